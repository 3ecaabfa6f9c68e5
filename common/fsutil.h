// fsutil: small filesystem helpers shared by the commands.
#pragma once

#include <stddef.h>

// mkdir -p path. Returns 0, or -1 with "<what>: cannot create DIR (reason)"
// in err; `what` names the option or key the path came from.
int fsutil_mkdirs(const char *path, const char *what, char *err, size_t errlen);
