"""Warnings before money is locked in (issue 18): seat windows closing, renewals coming, idle licences."""
