/* report_cli.c: placeholder */
