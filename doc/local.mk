# Documentation: man pages (installed) and the design pages (shipped in
# the tarball and installed under docdir).

dist_man_MANS += \
	doc/man/iosched-bench.1 \
	doc/man/iosched-calibrate.1 \
	doc/man/iosched.3 \
	doc/man/iosched-profile.5 \
	doc/man/djmfs.1 \
	doc/man/djmfs-bench.1 \
	doc/man/djmfsd.8 \
	doc/man/libdjmfs.3 \
	doc/man/djmfs-volume.5 \
	doc/man/streamd.8 \
	doc/man/streamd.conf.5 \
	doc/man/streamd-bench.1 \
	doc/man/streamd-soak.1

dist_doc_DATA += \
	doc/architecture.md \
	doc/sched.md \
	doc/djmfs-protocol.md \
	doc/djmfs.md \
	doc/djmfsd.service \
	doc/streamd.md \
	doc/threat-model.md \
	doc/streamd.service
