"""Source warehouses of the pipeline: the demo ERP warehouse generator and its Parquet export."""

from amili.warehouse.demo import (
    DEFECT_KINDS,
    TABLES,
    DemoWarehouseSummary,
    default_end_date,
    export_parquet,
    generate_demo_warehouse,
)

__all__ = [
    "DEFECT_KINDS",
    "TABLES",
    "DemoWarehouseSummary",
    "default_end_date",
    "export_parquet",
    "generate_demo_warehouse",
]
