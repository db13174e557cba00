# A PCIe 3.0 x4 NVMe solid-state disk of 1 TiB: low per-command overhead,
# a few GB/s of bandwidth and many requests served at once.
# Format: iosched-profile(5).

type = ssd
name = nvme
capacity_bytes = 1T
depth = 64
parallelism = 32

overhead_us = 5
read_latency_us = 80
write_latency_us = 20       # writes land in the drive's cache
read_MBps = 3400
write_MBps = 3000
