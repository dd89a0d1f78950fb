"""The benchmark registry: name -> "module:function" under bench/benchmarks/.

A benchmark is a function taking a support.Env and returning one result dict (support.result) or a list
of them. Adding one is one line here.
"""

BENCHMARKS: dict[str, str] = {
    "admin.import_10k": "admin_import:import_10k",
}
