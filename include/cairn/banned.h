/*
 * banned.h - functions cairn's code may not call, as compile errors (a
 * rule of the build, not part of the API).  Every .c file of lib/ and
 * src/ includes it after all its other headers (tests/lint.sh checks).
 *
 *   strcpy, strcat, strncpy, strncat   overflow or leave a string without
 *                                      its NUL: snprintf or memcpy with a
 *                                      length that was checked
 *   sprintf, vsprintf                  unbounded: snprintf, cairn_buf_printf
 *   strtok, strtok_r                   modify their input, hide state
 *   gets                               unbounded
 *   atoi, atol, atoll                  no error: strtoul with checks
 *   gmtime, localtime, ctime, asctime  static buffers (threads): the _r forms
 */
#ifndef CAIRN_BANNED_H
#define CAIRN_BANNED_H

#define BANNED(func) sorry_##func##_is_a_banned_function

#undef strcpy
#define strcpy(x, y) BANNED(strcpy)
#undef strcat
#define strcat(x, y) BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) BANNED(strncpy)
#undef strncat
#define strncat(x, y, n) BANNED(strncat)
#undef sprintf
#define sprintf(...) BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) BANNED(vsprintf)
#undef strtok
#define strtok(x, y) BANNED(strtok)
#undef strtok_r
#define strtok_r(x, y, z) BANNED(strtok_r)
#undef gets
#define gets(x) BANNED(gets)
#undef atoi
#define atoi(x) BANNED(atoi)
#undef atol
#define atol(x) BANNED(atol)
#undef atoll
#define atoll(x) BANNED(atoll)
#undef gmtime
#define gmtime(t) BANNED(gmtime)
#undef localtime
#define localtime(t) BANNED(localtime)
#undef ctime
#define ctime(t) BANNED(ctime)
#undef asctime
#define asctime(t) BANNED(asctime)

#endif
