/* sweep.c: placeholder */
