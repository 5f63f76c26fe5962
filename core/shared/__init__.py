"""What several replicas of the app share through PostgreSQL (DATABASE_URL): the hourly quota, the passcode
failures and the cap on requests in flight, each surviving restarts; plus the readiness check and the JSON event
line that hosting needs. SQLite instances keep core.policy's in-process Quota, FailureLog and Fanout cap.
"""

from core.shared.events import Experiment, logged, prompts_opted_in
from core.shared.failures import SharedFailureLog
from core.shared.health import Readiness, readiness
from core.shared.ledger import SharedQuota
from core.shared.pool import SharedDatabase, close_pools, shared_database
from core.shared.slots import Lease, SharedSlots

__all__ = ["Experiment", "Lease", "Readiness", "SharedDatabase", "SharedFailureLog", "SharedQuota", "SharedSlots",
           "close_pools", "logged", "prompts_opted_in", "readiness", "shared_database"]
