#include <stdio.h>
#include <string.h>
#include <greet.h>

#ifndef HELLO_VERSION
#define HELLO_VERSION "0.0.0"
#endif
#ifndef HELLO_CONF
#define HELLO_CONF "/opt/hello/etc/hello.conf"
#endif

/* read_greeting takes "greeting=<word>" from the config file, if any. */
static void read_greeting(char *out, size_t n) {
	char line[256];
	FILE *f = fopen(HELLO_CONF, "r");
	if (f == NULL)
		return;
	while (fgets(line, sizeof line, f) != NULL) {
		if (strncmp(line, "greeting=", 9) == 0) {
			line[strcspn(line, "\r\n")] = '\0';
			snprintf(out, n, "%s", line + 9);
		}
	}
	fclose(f);
}

int main(int argc, char **argv) {
	char greeting[128] = "Hello";
	if (argc > 1 && strcmp(argv[1], "--version") == 0) {
		printf("hello %s (libgreet %s)\n", HELLO_VERSION, greet_version());
		return 0;
	}
	read_greeting(greeting, sizeof greeting);
	return greet(greeting, argc > 1 ? argv[1] : "world") == 0 ? 0 : 1;
}
