"""What managers and reps read: pipeline metrics, the PNG dashboard and a lead's story."""
from ._charts import dashboard, period_label
from ._export import COLUMNS as EXPORT_COLUMNS
from ._export import ExportedLead, export_leads
from ._leadview import lead_json, recent_activity, story
from ._periods import Period
from ._periods import period as period_of
from ._stats import check_scope, compute, load_costs

__all__ = ["EXPORT_COLUMNS", "ExportedLead", "Period", "check_scope", "compute", "dashboard", "export_leads",
           "lead_json", "load_costs", "period_label", "period_of", "recent_activity", "story"]
