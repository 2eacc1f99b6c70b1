"""S3's error codes, one class per code, each with the HTTP status S3 answers it with.

The S3 endpoint renders them as ``<Error><Code/><Message/><Resource/><RequestId/></Error>``; the
signature checks (``euca.auth``) and the object store (``euca.walrus``) both raise them, so they
live here, below both.
"""

from __future__ import annotations

from euca.core.errors import ApiError


class S3Error(ApiError):
    """An S3 error; ``fields`` are the extra elements S3 puts in its error document (``BucketName``,
    ``Key``, ``ArgumentName``, ...), ``headers`` go out with the answer (``x-amz-delete-marker``)."""

    def __init__(self, message: str = "", headers: dict[str, str] | None = None, **fields: str) -> None:
        super().__init__(message)
        self.fields = fields
        self.headers = headers or {}


def _error(name: str, status: int, default: str) -> type[S3Error]:
    def __init__(self: S3Error, message: str = "", headers: dict[str, str] | None = None, **fields: str) -> None:
        S3Error.__init__(self, message or default, headers, **fields)
    return type(name, (S3Error,), {"code": name, "status": status, "__init__": __init__})


# --- signatures and permissions ------------------------------------------------------------------
AccessDenied = _error("AccessDenied", 403, "Access Denied")
InvalidAccessKeyId = _error("InvalidAccessKeyId", 403,
                            "The AWS Access Key Id you provided does not exist in our records.")
SignatureDoesNotMatch = _error("SignatureDoesNotMatch", 403,
                               "The request signature we calculated does not match the signature you provided. "
                               "Check your key and signing method.")
RequestTimeTooSkewed = _error("RequestTimeTooSkewed", 403,
                              "The difference between the request time and the current time is too large.")
XAmzContentSHA256Mismatch = _error("XAmzContentSHA256Mismatch", 400,
                                   "The provided 'x-amz-content-sha256' header does not match what was computed.")
AuthorizationHeaderMalformed = _error("AuthorizationHeaderMalformed", 400,
                                      "The authorization header is malformed.")
IncompleteBody = _error("IncompleteBody", 400,
                        "You did not provide the number of bytes specified by the Content-Length HTTP header.")

# --- requests ------------------------------------------------------------------------------------
InvalidArgument = _error("InvalidArgument", 400, "Invalid Argument")
InvalidRequest = _error("InvalidRequest", 400, "Invalid Request")
MalformedXML = _error("MalformedXML", 400, "The XML you provided was not well-formed or did not validate "
                                           "against our published schema.")
MethodNotAllowed = _error("MethodNotAllowed", 405, "The specified method is not allowed against this resource.")
NotImplemented_ = _error("NotImplemented", 501, "A header you provided implies functionality that is not implemented.")
MissingContentLength = _error("MissingContentLength", 411, "You must provide the Content-Length HTTP header.")
EntityTooLarge = _error("EntityTooLarge", 400, "Your proposed upload exceeds the maximum allowed size.")
EntityTooSmall = _error("EntityTooSmall", 400, "Your proposed upload is smaller than the minimum allowed object size.")
KeyTooLongError = _error("KeyTooLongError", 400, "Your key is too long.")
BadDigest = _error("BadDigest", 400, "The Content-MD5 you specified did not match what we received.")
InvalidDigest = _error("InvalidDigest", 400, "The Content-MD5 you specified is not valid.")
InvalidRange = _error("InvalidRange", 416, "The requested range is not satisfiable")
PreconditionFailed = _error("PreconditionFailed", 412, "At least one of the pre-conditions you specified did not hold")
InvalidPart = _error("InvalidPart", 400, "One or more of the specified parts could not be found. The part might not "
                                         "have been uploaded, or the specified entity tag might not have matched "
                                         "the part's entity tag.")
InvalidPartOrder = _error("InvalidPartOrder", 400, "The list of parts was not in ascending order. Parts must be "
                                                   "ordered by part number.")
MalformedPOSTRequest = _error("MalformedPOSTRequest", 400, "The body of your POST request is not well-formed "
                                                           "multipart/form-data.")
MaxPostPreDataLengthExceeded = _error("MaxPostPreDataLengthExceededError", 400, "Your POST request fields preceding "
                                                                                "the upload file were too large.")
InvalidPolicyDocument = _error("InvalidPolicyDocument", 400, "The content of the form does not meet the conditions "
                                                             "specified in the policy document.")
InvalidStorageClass = _error("InvalidStorageClass", 400, "The storage class you specified is not valid")
InternalError = _error("InternalError", 500, "We encountered an internal error. Please try again.")
ServiceUnavailable = _error("ServiceUnavailable", 503, "Reduce your request rate.")
InsufficientStorage = _error("InsufficientStorage", 507, "Insufficient storage: the object store's disk is nearly "
                                                         "full, writes are refused until space is freed.")

# --- resources -----------------------------------------------------------------------------------
NoSuchBucket = _error("NoSuchBucket", 404, "The specified bucket does not exist")
NoSuchKey = _error("NoSuchKey", 404, "The specified key does not exist.")
NoSuchVersion = _error("NoSuchVersion", 404, "The specified version does not exist.")
NoSuchUpload = _error("NoSuchUpload", 404, "The specified upload does not exist. The upload ID may be invalid, or "
                                           "the upload may have been aborted or completed.")
NoSuchCORSConfiguration = _error("NoSuchCORSConfiguration", 404, "The CORS configuration does not exist")
NoSuchLifecycleConfiguration = _error("NoSuchLifecycleConfiguration", 404,
                                      "The lifecycle configuration does not exist")
NoSuchTagSet = _error("NoSuchTagSet", 404, "The TagSet does not exist")
InvalidBucketName = _error("InvalidBucketName", 400, "The specified bucket is not valid.")
BucketAlreadyExists = _error("BucketAlreadyExists", 409, "The requested bucket name is not available. The bucket "
                                                         "namespace is shared by all users of the system. Please "
                                                         "select a different name and try again.")
BucketAlreadyOwnedByYou = _error("BucketAlreadyOwnedByYou", 409, "Your previous request to create the named bucket "
                                                                 "succeeded and you already own it.")
BucketNotEmpty = _error("BucketNotEmpty", 409, "The bucket you tried to delete is not empty")
TooManyBuckets = _error("TooManyBuckets", 400, "You have attempted to create more buckets than allowed")
InvalidLocationConstraint = _error("InvalidLocationConstraint", 400,
                                   "The specified location-constraint is not valid")
InvalidTag = _error("InvalidTag", 400, "The tag provided was not a valid tag.")
CORSForbidden = _error("AccessForbidden", 403, "CORSResponse: This CORS request is not allowed.")
