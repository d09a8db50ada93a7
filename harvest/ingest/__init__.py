"""The one ingest every transport hands its device writes to (:mod:`.service`), how it reports
each one (:mod:`.reports`), and the raw listeners' batch-shaped path through the same checks
(:mod:`.batch`)."""

from harvest.ingest.batch import Message, RawBatch, RawIngest
from harvest.ingest.reports import Reporter
from harvest.ingest.service import Accepted, Checked, IngestService

__all__ = ["Accepted", "Checked", "IngestService", "Message", "RawBatch", "RawIngest", "Reporter"]
