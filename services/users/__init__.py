"""Users and licences of the organisation's Microsoft tenant, and the organisation's own directory."""

from services.users.directory import DirectoryService
from services.users.leases import LeaseService
from services.users.licences import LicenceService
from services.users.service import UserService
from services.users.sync import UserSync

__all__ = ["DirectoryService", "LeaseService", "LicenceService", "UserService", "UserSync"]
