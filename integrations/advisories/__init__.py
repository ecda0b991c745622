"""Offline advisory data: OSV directories (DSA/DLA/USN), CISA KEV JSON, hosts' own
dnf/zypper advisories. Loaders validate and name the file and the record on errors."""

from integrations.advisories.feeds import AdvisoryFeed, load_feed
from integrations.advisories.hostdata import read_host_advisories
from integrations.advisories.kev import load_kev
from integrations.advisories.osv import load_osv_dir, parse_osv
from integrations.advisories.records import records_from_host, records_from_security

__all__ = [
    "AdvisoryFeed",
    "load_feed",
    "load_kev",
    "load_osv_dir",
    "parse_osv",
    "read_host_advisories",
    "records_from_host",
    "records_from_security",
]
