"""Warnings before money is locked in: seat windows closing, renewals coming, idle licences."""
