# What more than one component shares and none of them owns: today the
# log-call formatter (lg.h), a header each of libiosched, libdjmfs and
# streamd instantiates with its own hook types.  Header only, so the
# installed shared libraries gain no symbol from it; a component that
# uses it adds -I$(top_srcdir)/common to its own CPPFLAGS.

noinst_HEADERS += common/lg.h
