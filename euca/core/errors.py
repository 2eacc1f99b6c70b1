"""EC2's error codes, one class per code, each with the HTTP status EC2 answers it with.

A handler raises one of these; the app turns it into EC2's error document
``<Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>``.
Anything else that escapes a handler is answered as InternalError, without details.
"""

from __future__ import annotations


class ApiError(Exception):
    """An AWS error: ``code`` is what the client matches on, the message says what was wrong."""

    code = "InternalError"
    status = 400

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.code)
        self.message = message or self.code


# --- request-level -------------------------------------------------------------------------------

class AuthFailure(ApiError):
    code, status = "AuthFailure", 401


class RequestExpired(ApiError):
    code = "RequestExpired"


class UnauthorizedOperation(ApiError):
    code, status = "UnauthorizedOperation", 403


class DryRunOperation(ApiError):
    """What a request with ``DryRun=true`` gets when it would have succeeded; nothing was done."""

    code, status = "DryRunOperation", 412

    def __init__(self, message: str = "Request would have succeeded, but DryRun flag is set.") -> None:
        super().__init__(message)


class InvalidAction(ApiError):
    code = "InvalidAction"


class MissingParameter(ApiError):
    code = "MissingParameter"


class InvalidParameterValue(ApiError):
    code = "InvalidParameterValue"


class InvalidParameterCombination(ApiError):
    code = "InvalidParameterCombination"


class InvalidParameter(ApiError):
    """A parameter name that is not well formed (``GroupId.``, ``Filter.0.Name``, ``InstanceId.①``)."""

    code = "InvalidParameter"


class UnknownParameter(ApiError):
    """A well-formed parameter name the action does not have."""

    code = "UnknownParameter"


class InvalidFilter(ApiError):
    code = "InvalidFilter"


class FilterLimitExceeded(ApiError):
    code = "FilterLimitExceeded"


class InvalidPaginationToken(ApiError):
    code = "InvalidPaginationToken"


class Unsupported(ApiError):
    code = "Unsupported"


class RequestTooLarge(ApiError):
    code, status = "RequestEntityTooLarge", 413


class InternalError(ApiError):
    code, status = "InternalError", 500


class ServiceUnavailable(ApiError):
    code, status = "Unavailable", 503


# --- instances -----------------------------------------------------------------------------------

class InvalidInstanceIDNotFound(ApiError):
    code = "InvalidInstanceID.NotFound"


class InvalidInstanceIDMalformed(ApiError):
    code = "InvalidInstanceID.Malformed"


class InsufficientInstanceCapacity(ApiError):
    code, status = "InsufficientInstanceCapacity", 503


class InsufficientAddressCapacity(ApiError):
    code, status = "InsufficientAddressCapacity", 503


class InstanceLimitExceeded(ApiError):
    code = "InstanceLimitExceeded"


class IdempotentParameterMismatch(ApiError):
    code = "IdempotentParameterMismatch"


class IncorrectInstanceState(ApiError):
    code = "IncorrectInstanceState"


class InvalidInstanceType(ApiError):
    code = "InvalidInstanceType"


class OperationNotPermitted(ApiError):
    code = "OperationNotPermitted"


class InvalidZoneNotFound(ApiError):
    code = "InvalidZone.NotFound"


class InvalidUserDataMalformed(ApiError):
    code = "InvalidUserData.Malformed"


# --- images --------------------------------------------------------------------------------------

class InvalidAMIIDNotFound(ApiError):
    code = "InvalidAMIID.NotFound"


class InvalidAMIIDMalformed(ApiError):
    code = "InvalidAMIID.Malformed"


class InvalidAMIIDUnavailable(ApiError):
    code = "InvalidAMIID.Unavailable"


class InvalidAMIAttributeItemValue(ApiError):
    code = "InvalidAMIAttributeItemValue"


class InvalidManifest(ApiError):
    code = "InvalidManifest"


class InvalidAMINameDuplicate(ApiError):
    code = "InvalidAMIName.Duplicate"


# --- key pairs -----------------------------------------------------------------------------------

class InvalidKeyPairNotFound(ApiError):
    code = "InvalidKeyPair.NotFound"


class InvalidKeyPairDuplicate(ApiError):
    code = "InvalidKeyPair.Duplicate"


class InvalidKeyFormat(ApiError):
    code = "InvalidKey.Format"


# --- security groups -----------------------------------------------------------------------------

class InvalidGroupNotFound(ApiError):
    code = "InvalidGroup.NotFound"


class InvalidGroupDuplicate(ApiError):
    code = "InvalidGroup.Duplicate"


class InvalidGroupInUse(ApiError):
    code = "InvalidGroup.InUse"


class InvalidGroupReserved(ApiError):
    code = "InvalidGroup.Reserved"


class InvalidGroupIdMalformed(ApiError):
    code = "InvalidGroupId.Malformed"


class InvalidPermissionDuplicate(ApiError):
    code = "InvalidPermission.Duplicate"


class InvalidPermissionNotFound(ApiError):
    code = "InvalidPermission.NotFound"


class InvalidPermissionMalformed(ApiError):
    code = "InvalidPermission.Malformed"


class RulesPerSecurityGroupLimitExceeded(ApiError):
    code = "RulesPerSecurityGroupLimitExceeded"


class SecurityGroupLimitExceeded(ApiError):
    code = "SecurityGroupLimitExceeded"


class InvalidSecurityGroupRuleIdNotFound(ApiError):
    code = "InvalidSecurityGroupRuleId.NotFound"


class InvalidSecurityGroupRuleIdMalformed(ApiError):
    code = "InvalidSecurityGroupRuleId.Malformed"


class InvalidVpcIDNotFound(ApiError):
    """EC2-Classic has no VPCs: every VpcId names one that does not exist."""

    code = "InvalidVpcID.NotFound"


# --- addresses -----------------------------------------------------------------------------------

class AddressLimitExceeded(ApiError):
    code = "AddressLimitExceeded"


class InvalidAddressNotFound(ApiError):
    code = "InvalidAddress.NotFound"


class InvalidAddressMalformed(ApiError):
    code = "InvalidAddress.Malformed"


class InvalidAllocationIDNotFound(ApiError):
    code = "InvalidAllocationID.NotFound"


class InvalidAssociationIDNotFound(ApiError):
    code = "InvalidAssociationID.NotFound"


class InvalidIPAddressInUse(ApiError):
    code = "InvalidIPAddress.InUse"


# --- tags ----------------------------------------------------------------------------------------

class InvalidIDMalformed(ApiError):
    code = "InvalidID"


class InvalidResourceNotFound(ApiError):
    """EC2 answers an unknown tag target with the resource's own NotFound code; this is the fallback."""

    code = "InvalidID"


class TagLimitExceeded(ApiError):
    code = "TagLimitExceeded"


# --- volumes and snapshots (EBS) -----------------------------------------------------------------

class InvalidVolumeNotFound(ApiError):
    code = "InvalidVolume.NotFound"


class InvalidVolumeIDMalformed(ApiError):
    code = "InvalidVolumeID.Malformed"


class InvalidVolumeZoneMismatch(ApiError):
    code = "InvalidVolume.ZoneMismatch"


class VolumeInUse(ApiError):
    code = "VolumeInUse"


class IncorrectState(ApiError):
    code = "IncorrectState"


class InvalidAttachmentNotFound(ApiError):
    code = "InvalidAttachment.NotFound"


class VolumeLimitExceeded(ApiError):
    code = "VolumeLimitExceeded"


class InvalidSnapshotNotFound(ApiError):
    code = "InvalidSnapshot.NotFound"


class InvalidSnapshotIDMalformed(ApiError):
    code = "InvalidSnapshotID.Malformed"


class InvalidSnapshotInUse(ApiError):
    code = "InvalidSnapshot.InUse"


class SnapshotLimitExceeded(ApiError):
    code = "SnapshotLimitExceeded"


class InvalidBlockDeviceMapping(ApiError):
    code = "InvalidBlockDeviceMapping"


class UnsupportedOperation(ApiError):
    code = "UnsupportedOperation"
