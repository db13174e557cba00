/*
 * The one rule for recording names, [A-Za-z0-9._-]{1,128} but never "."
 * or "..": the record and play routes, the catalog and play tokens all
 * apply it, so a name that reaches the file system or a signature has
 * passed the same check everywhere.  A file of its own so the fuzz
 * targets can link it without the daemon.
 */
#include <string.h>

#include "streamd-int.h"

int sd_name_valid(const char *name)
{
	size_t n = 0;

	if (!name || !strcmp(name, ".") || !strcmp(name, ".."))
		return 0;
	for (; name[n]; n++) {
		char ch = name[n];

		if (n >= SD_NAME_MAX ||
		    !((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
		      ch == '-'))
			return 0;
	}
	return n > 0;
}
