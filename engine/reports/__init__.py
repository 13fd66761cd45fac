"""What managers and reps read: pipeline metrics, the PNG dashboard and a lead's story."""
from ._charts import dashboard, period_label
from ._leadview import lead_json, recent_activity, story
from ._stats import compute, load_costs

__all__ = ["compute", "dashboard", "lead_json", "load_costs", "period_label", "recent_activity", "story"]
