/* report_model.c: placeholder */
