/* heap_cli.c: placeholder */
