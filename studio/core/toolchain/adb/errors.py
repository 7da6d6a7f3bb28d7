"""What can go wrong between the studio and a phone, each with its own exit code and advice.

The codes extend the CLI's (2 bad input, 3 backend unavailable / job failed) so that a script can
tell "plug the phone in" from "the model failed on it" without parsing messages:

====  =========================================================================================
3     no adb server listening (the studio never starts one)
4     the device is unauthorised, offline or not connected
5     no QNN SDK for the device libraries (qnn-net-run, libQnnHtp.so, the V<arch> stub and skel)
6     the phone's SoC is not in the device catalogue
7     a push failed (the device's disk is full, or the folder cannot be written)
8     the run was killed on the device, or qnn-net-run failed there
====  =========================================================================================
"""

from __future__ import annotations

from studio.core.errors import BackendUnavailableError, JobFailedError


class NoAdbServerError(BackendUnavailableError):
    """Nothing listens on ANDROID_ADB_SERVER_PORT (default 5037)."""

    exit_code = 3


class DeviceNotReadyError(BackendUnavailableError):
    """The serial is unknown, or the device is unauthorised or offline."""

    exit_code = 4


class DeviceSdkMissingError(BackendUnavailableError):
    """The QNN SDK (or one of the device libraries it should hold) is not there."""

    exit_code = 5


class UnknownSocError(BackendUnavailableError):
    """The phone's ``ro.soc.model`` matches no catalogue entry, so its HTP version is unknown."""

    exit_code = 6


class DevicePushError(JobFailedError):
    """A file could not be copied to the device (disk full, read-only or missing folder)."""

    exit_code = 7


class DeviceRunError(JobFailedError):
    """qnn-net-run failed on the device, or was killed there."""

    exit_code = 8
