/* report_text.c: placeholder */
