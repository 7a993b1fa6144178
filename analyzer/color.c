/* color.c: whether `report` and `heap` colour what they print.
 *
 * Colour goes only to a terminal, and the no-color.org convention turns it off: NO_COLOR set to a
 * non-empty value (an empty NO_COLOR, like an unset one, leaves colour on). */
#include <stdlib.h>
#include <unistd.h>
#include "analyzer_int.h"

int analyzer_color_wanted(int fd)
{
    const char *no_color = getenv("NO_COLOR");
    return isatty(fd) && !(no_color && *no_color);
}
