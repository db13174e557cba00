# Writes sched/iosched_builtin.c: the shipped disk profiles
# (sched/profiles/*.profile, given as arguments) as C strings, so that the
# library knows hdd-7200, ssd-sata and nvme even where no profile
# directory is installed (a build tree, a container).  The profile files
# stay the one source: the build makes this file from them each time they
# change, and the same parser reads both (iosched_profile.c).
function flush() {
	if (name != "")
		printf "\t{ \"%s\",\n%s\t},\n", name, text
}
FNR == 1 {
	flush()
	name = FILENAME
	sub(/^.*\//, "", name)
	sub(/\.profile$/, "", name)
	text = ""
}
{
	line = $0
	gsub(/\\/, "\\\\\\\\", line)
	gsub(/"/, "\\\"", line)
	text = text sprintf("\t  \"%s\\n\"\n", line)
}
BEGIN {
	print "/* Made by sched/tools/embed-profiles.awk from sched/profiles: do not"
	print " * edit; edit the profiles. */"
	print "#include \"iosched-int.h\""
	print ""
	print "const struct iosched__builtin_profile iosched__builtin_profiles[] = {"
}
END {
	flush()
	print "\t{ NULL, NULL },"
	print "};"
}
