# A 7,200-rpm 3.5" SATA disk of about 2005 (500 GB class), as seen by the
# GLMD service-time model: seek + half a revolution + media transfer + bus
# transfer + command overhead.  Format: iosched-profile(5).

type = hdd
name = hdd-7200
capacity_bytes = 500107862016
depth = 1

cylinders = 120000
rpm = 7200                  # one revolution = 8.333 ms
media_outer_MBps = 78       # zoned recording: outermost cylinder...
media_inner_MBps = 40       # ...falling linearly to the innermost
bus_MBps = 150              # SATA 1.5 Gb/s after 8b/10b coding
overhead_us = 200

# Seek curve.  The arm reaches seek_vmax after vmax^2/accel = 37,000
# cylinders of travel (half accelerating, half braking), so:
#   a third of the stroke (40,000 cyl): 2*10000/2703 ms + (40000 - 36996)/10000 ms
#                                       + 0.8 ms settle = ~8.5 ms (average seek)
#   full stroke (119,999 cyl):          7.40 ms + 8.30 ms + 0.8 ms = ~16.5 ms
# and a move of up to short_seek_tracks cylinders costs only the settle time.
settle_us = 800
short_seek_tracks = 4
seek_accel = 2703           # cylinders per ms^2
seek_vmax = 10000           # cylinders per ms
