"""Per-job resource control with cgroups v1 and v2; open_driver() picks the driver."""

from worker.cgroup.base import CgroupDriver, CgroupMode, JobCgroup
from worker.cgroup.detect import detect_mode, open_driver

__all__ = ["CgroupDriver", "CgroupMode", "JobCgroup", "detect_mode", "open_driver"]
