# The tools' shared plumbing (JSON output, whole writes, the monotonic
# clock): a convenience library linked by the benchmarks and command-line
# tools, never by the installed libraries.

noinst_LTLIBRARIES += tools/libtools.la
tools_libtools_la_SOURCES = \
	tools/tool_clock.h \
	tools/tool_clock.c \
	tools/tool_io.h \
	tools/tool_io.c \
	tools/tool_json.h \
	tools/tool_json.c
tools_libtools_la_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
tools_libtools_la_LIBADD = $(JANSSON_LIBS) $(LIBM)

TOOLS_CPPFLAGS = -I$(top_srcdir)/tools
TOOLS_LIBS = tools/libtools.la $(JANSSON_LIBS) $(LIBM)
