/*
 * The one log-call formatter of the project: libiosched's iosched__log,
 * libdjmfs's djmfs__log and streamd's sd__log all turn a printf-style
 * diagnostic into one bounded line and hand it to their caller's hook,
 * and all three are this body.  It is a definition each component
 * instantiates with its own types rather than a compiled function,
 * because the hooks are typed per component (each public header defines
 * its own, so no library depends on another's to log): one compiled body
 * would have to call every hook through a function-pointer type that is
 * not its own.  Header only, so nothing of it is a symbol an installed
 * shared library could export.
 *
 * LG_DEFINE_LOG(name, hook_t, level_t, line_max) defines
 *	void name(const hook_t *log, level_t lvl, const char *fmt, ...);
 * which does nothing when @log or its fn is NULL, and otherwise formats
 * the line into line_max bytes (a longer one is cut) and calls
 * log->fn(log->arg, lvl, line).  hook_t needs members fn and arg.  The
 * includer declares the prototype (with its format attribute) and
 * includes <stdarg.h> and <stdio.h>.
 */
#ifndef LG_H
#define LG_H

#define LG_DEFINE_LOG(name, hook_t, level_t, line_max)                     \
	void name(const hook_t *log, level_t lvl, const char *fmt, ...)    \
	{                                                                  \
		char line[line_max];                                       \
		va_list ap;                                                \
                                                                           \
		if (!log || !log->fn)                                      \
			return;                                            \
		va_start(ap, fmt);                                         \
		vsnprintf(line, sizeof(line), fmt, ap);                    \
		va_end(ap);                                                \
		log->fn(log->arg, lvl, line);                              \
	}

#endif /* LG_H */
