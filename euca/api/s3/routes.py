"""Which operation a request is: its method, whether it names a bucket and a key, and its
sub-resource (``?acl``, ``?uploads``, ``?uploadId=``, ...), as S3 routes them."""

from __future__ import annotations

from euca.api.s3 import buckets, cors, objects, post, uploads
from euca.api.s3.call import Call, Handler
from euca.core.s3errors import MethodNotAllowed, NotImplemented_

# (method, has a key) -> [(sub-resource or "", handler)], the first match wins
_TABLE: dict[tuple[str, bool], list[tuple[str, Handler]]] = {
    ("GET", False): [("acl", buckets.get_bucket_acl), ("location", buckets.get_location),
                     ("versioning", buckets.get_versioning), ("versions", buckets.list_versions),
                     ("uploads", uploads.list_uploads), ("cors", buckets.get_cors),
                     ("lifecycle", buckets.get_lifecycle), ("tagging", buckets.get_bucket_tagging),
                     ("", buckets.list_objects)],
    ("PUT", False): [("acl", buckets.put_bucket_acl), ("versioning", buckets.put_versioning),
                     ("cors", buckets.put_cors), ("lifecycle", buckets.put_lifecycle),
                     ("tagging", buckets.put_bucket_tagging), ("", buckets.create_bucket)],
    ("DELETE", False): [("cors", buckets.delete_cors), ("lifecycle", buckets.delete_lifecycle),
                        ("tagging", buckets.delete_bucket_tagging), ("", buckets.delete_bucket)],
    ("HEAD", False): [("", buckets.head_bucket)],
    ("POST", False): [("delete", objects.delete_objects), ("", post.post_object)],
    ("GET", True): [("acl", objects.get_object_acl), ("tagging", objects.get_object_tagging),
                    ("uploadId", uploads.list_parts), ("", objects.get_object)],
    ("HEAD", True): [("", objects.get_object)],
    ("PUT", True): [("acl", objects.put_object_acl), ("tagging", objects.put_object_tagging),
                    ("uploadId", uploads.upload_part), ("", objects.put_object)],
    ("DELETE", True): [("tagging", objects.delete_object_tagging), ("uploadId", uploads.abort),
                       ("", objects.delete_object)],
    ("POST", True): [("uploads", uploads.create), ("uploadId", uploads.complete)],
}
# sub-resources S3 has that this cloud does not implement (bucket policy, SSE, object lock, ...)
_UNSUPPORTED = frozenset(("policy", "logging", "notification", "website", "replication", "encryption",
                          "object-lock", "retention", "legal-hold", "requestPayment", "accelerate", "analytics",
                          "inventory", "metrics", "intelligent-tiering", "ownershipControls", "publicAccessBlock",
                          "torrent", "restore", "select", "attributes", "policyStatus"))


def route(call: Call) -> Handler:
    if call.method == "OPTIONS" and call.bucket:
        return cors.preflight
    if not call.bucket:
        if call.method == "GET":
            return buckets.list_buckets
        raise MethodNotAllowed(Method=call.method, ResourceType="SERVICE")
    for name in call.query:
        if name in _UNSUPPORTED:
            raise NotImplemented_(f"The {name} sub-resource is not implemented by this cloud")
    for sub, handler in _TABLE.get((call.method, bool(call.key)), ()):
        if sub == "" or sub in call.query:
            return handler
    raise MethodNotAllowed(Method=call.method, ResourceType="OBJECT" if call.key else "BUCKET")
