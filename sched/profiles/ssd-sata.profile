# A SATA 6 Gb/s solid-state disk of 512 GiB: the interface caps sequential
# bandwidth near 540/500 MB/s, and internal parallelism lets about eight
# requests proceed at once.  Format: iosched-profile(5).

type = ssd
name = ssd-sata
capacity_bytes = 512G
depth = 32                  # NCQ allows 32 commands in flight
parallelism = 8

overhead_us = 10
read_latency_us = 90
write_latency_us = 60       # writes land in the drive's cache
read_MBps = 540
write_MBps = 500
