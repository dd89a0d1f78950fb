"""The benchmark registry: name -> "module:function" under bench/benchmarks/.

A benchmark is a function taking a support.Env and returning one result dict (support.result) or a list
of them. Adding one is one line here.
"""

BENCHMARKS: dict[str, str] = {
    "admin.import_10k": "admin_import:import_10k",
    "agid.throughput": "agid_load:throughput",
    "agid.db_frozen": "agid_load:db_frozen",
    "ctid.ami_ingest": "ctid_ami_ingest:ami_ingest",
    "ctid.cti_latency": "ctid_cti_latency:cti_latency",
    "image.build_boot": "image_build_boot:build_boot",
    "confgend.generate_10k": "confgend_bench:generate_10k",
    "confgend.client_cpu": "confgend_bench:client_cpu",
    "confgend.reload_storm": "confgend_bench:reload_storm",
    "calls.setup": "calls_bench:setup",
    "config.live_change": "calls_bench:live_change",
}
