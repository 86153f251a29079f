#include <stdio.h>
#include "greet.h"

int greet(const char *greeting, const char *name) {
	return printf("%s, %s!\n", greeting, name) < 0 ? -1 : 0;
}

const char *greet_version(void) {
	return GREET_VERSION;
}
