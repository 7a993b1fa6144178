/* flame.c: placeholder */
