"""What the backups app announces; other apps listen (drills verifies each backup).

backup_succeeded: sent with run= (the BackupRun) and inline= (True when the
backup ran in the caller's process, e.g. `backup --inline`, so what follows
should run there too instead of going to a worker).
"""

from django.dispatch import Signal

backup_succeeded = Signal()
