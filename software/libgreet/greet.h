#ifndef GREET_H
#define GREET_H

#define GREET_VERSION "1.0.0"

/* greet writes "<greeting>, <name>!" and a newline to stdout. */
int greet(const char *greeting, const char *name);

/* greet_version returns the version of the library actually loaded. */
const char *greet_version(void);

#endif
