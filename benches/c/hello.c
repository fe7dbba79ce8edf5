/* hello.c: the smallest useful program, built static, for start-up time. */
#include <stdio.h>

int main(void)
{
    puts("hello");
    return 0;
}
