/* A shared library with no Tollgate entry points. */
int some_function(void) { return 42; }
