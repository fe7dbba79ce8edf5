/* The initial process state: auxiliary vector, argv and environment.
 *
 * usage: auxv EXECFN alpha "with space" ""
 *   EXECFN   what AT_EXECFN must say (the path of the program)
 * The environment must be exactly CONF_E2E_VAR="hello world" and
 * CONF_E2E_EMPTY="" (plus CONF_E2E_NATIVE / CONF_E2E_KEEP_GOING).
 */
#include "check.h"

#include <elf.h>
#include <link.h>
#include <sys/auxv.h>

extern char **environ;
extern char _start[];

struct main_obj {
    int found;
    ElfW(Addr) addr;
    const ElfW(Phdr) * phdr;
    ElfW(Half) phnum;
    int ld_found;
    ElfW(Addr) ld_addr;
};

static int find_objects(struct dl_phdr_info *info, size_t size, void *data)
{
    struct main_obj *m = data;
    (void)size;
    if (!m->found) { /* the first object is the program */
        m->found = 1;
        m->addr = info->dlpi_addr;
        m->phdr = info->dlpi_phdr;
        m->phnum = info->dlpi_phnum;
    } else if (info->dlpi_name && strstr(info->dlpi_name, "ld-linux")) {
        m->ld_found = 1;
        m->ld_addr = info->dlpi_addr;
    }
    return 0;
}

static void aux(char **envp_at_start)
{
    CHECK_EQ("AT_PAGESZ", getauxval(AT_PAGESZ), 4096);
    CHECK_EQ("sysconf(_SC_PAGESIZE)", sysconf(_SC_PAGESIZE), 4096);
    const uint8_t *rnd = (const uint8_t *)getauxval(AT_RANDOM);
    CHECK("AT_RANDOM is set", rnd != NULL, "NULL");
    if (rnd) {
        static const uint8_t zero[16];
        CHECK("AT_RANDOM bytes are not all zero", memcmp(rnd, zero, 16) != 0, "16 zero bytes");
    }
    CHECK_EQ("AT_SECURE", getauxval(AT_SECURE), 0);
    CHECK_EQ("AT_ENTRY is _start", getauxval(AT_ENTRY), (unsigned long)_start);

    unsigned long phdr = getauxval(AT_PHDR), phnum = getauxval(AT_PHNUM), phent = getauxval(AT_PHENT);
    CHECK_EQ("AT_PHENT", phent, sizeof(ElfW(Phdr)));
    struct main_obj m = {0};
    dl_iterate_phdr(find_objects, &m);
    CHECK("dl_iterate_phdr finds the program", m.found, "no object");
    CHECK("AT_PHDR matches dl_iterate_phdr", (unsigned long)m.phdr == phdr, "AT_PHDR %#lx, dlpi_phdr %p", phdr,
          (void *)m.phdr);
    CHECK("AT_PHNUM matches dl_iterate_phdr", m.phnum == phnum, "AT_PHNUM %lu, dlpi_phnum %u", phnum, m.phnum);
    /* the program headers describe where the program is: _start lies in an
     * executable PT_LOAD, and AT_PHDR lies in some PT_LOAD */
    const ElfW(Phdr) *ph = (const ElfW(Phdr) *)phdr;
    int entry_in_text = 0, phdr_loaded = 0;
    for (unsigned long i = 0; ph && i < phnum; i++) {
        if (ph[i].p_type != PT_LOAD)
            continue;
        unsigned long lo = m.addr + ph[i].p_vaddr, hi = lo + ph[i].p_memsz;
        if ((ph[i].p_flags & PF_X) && (unsigned long)_start >= lo && (unsigned long)_start < hi)
            entry_in_text = 1;
        if (phdr >= lo && phdr < hi)
            phdr_loaded = 1;
    }
    CHECK("_start is in an executable PT_LOAD", entry_in_text, "load bias %#lx", (unsigned long)m.addr);
    CHECK("AT_PHDR is inside a PT_LOAD", phdr_loaded, "AT_PHDR %#lx", phdr);
#ifdef CONF_VARIANT_STATIC
    CHECK_EQ("static program has no load bias", m.addr, 0);
#else
    CHECK("PIE has a load bias", m.addr != 0, "0");
#endif
#ifdef CONF_VARIANT_DYNAMIC
    unsigned long base = getauxval(AT_BASE);
    CHECK("AT_BASE is set for a dynamic program", base != 0, "0");
    CHECK("AT_BASE is where ld.so is", m.ld_found && m.ld_addr == base, "AT_BASE %#lx, ld.so at %#lx", base,
          (unsigned long)m.ld_addr);
#else
    CHECK_EQ("AT_BASE is 0 without an interpreter", getauxval(AT_BASE), 0);
#endif

    /* the auxiliary vector follows the environment on the stack */
    char **e = envp_at_start;
    while (*e)
        e++;
    ElfW(auxv_t) *av = (ElfW(auxv_t) *)(e + 1);
    int n = 0, pagesz_seen = 0, agrees = 1;
    unsigned long hw = 0;
    for (; av->a_type != AT_NULL && n < 64; av++, n++) {
        if (av->a_type == AT_PAGESZ)
            pagesz_seen = 1;
        if (av->a_type == AT_HWCAP) /* glibc's getauxval(AT_HWCAP) is its own value on x86-64 */
            hw = av->a_un.a_val;
        if (av->a_type == AT_PHDR || av->a_type == AT_ENTRY || av->a_type == AT_RANDOM || av->a_type == AT_EXECFN)
            agrees &= av->a_un.a_val == getauxval(av->a_type);
    }
    CHECK("auxv follows envp on the stack", n > 0 && n < 64 && pagesz_seen, "%d entries, AT_PAGESZ %s", n,
          pagesz_seen ? "seen" : "missing");
    CHECK("the auxv on the stack agrees with getauxval", agrees, "a value differs");
    CHECK("AT_HWCAP (CPUID.1:EDX) has FPU and SSE2", (hw & 1) && (hw & (1UL << 26)), "%#lx", hw);
}

int main(int argc, char **argv, char **envp)
{
    check_init();
    char **envp_at_start = envp;
    CHECK("argc (an empty argument counts)", argc == 5, "argc %d", argc);
    if (argc < 2)
        return check_done();
    CHECK("argv[argc] is NULL", argv[argc] == NULL, "not NULL");
    CHECK("envp follows argv", envp == argv + argc + 1, "envp %p, argv %p", (void *)envp, (void *)argv);
    if (argc >= 4) {
        CHECK("argv[2]", strcmp(argv[2], "alpha") == 0, "\"%s\"", argv[2]);
        CHECK("argv[3] keeps its space", strcmp(argv[3], "with space") == 0, "\"%s\"", argv[3]);
    }
    if (argc >= 5)
        CHECK("argv[4] is empty", argv[4][0] == 0, "\"%s\"", argv[4]);
    CHECK("stack is 16-byte aligned in main", ((uintptr_t)__builtin_frame_address(0) & 15) == 0, "%p",
          __builtin_frame_address(0));

    const char *execfn = (const char *)getauxval(AT_EXECFN);
    CHECK("AT_EXECFN is set", execfn != NULL, "NULL");
    if (execfn)
        CHECK("AT_EXECFN is the program's path", strcmp(execfn, argv[1]) == 0, "\"%s\", want \"%s\"", execfn, argv[1]);

    const char *v = getenv("CONF_E2E_VAR");
    CHECK("loader.env value", v && strcmp(v, "hello world") == 0, "\"%s\"", v ? v : "(unset)");
    v = getenv("CONF_E2E_EMPTY");
    CHECK("loader.env empty value", v && v[0] == 0, "\"%s\"", v ? v : "(unset)");
    CHECK("unlisted variables do not exist", getenv("PATH") == NULL && getenv("HOME") == NULL, "PATH or HOME set");
    int count = 0, ours = 0;
    for (char **e = environ; *e; e++) {
        count++;
        if (strncmp(*e, "CONF_E2E_", 9) == 0)
            ours++;
    }
    CHECK("only the manifest's variables", count == ours && ours >= 2, "%d variables, %d of them CONF_E2E_*", count,
          ours);
    CHECK("environ is envp", environ == envp_at_start, "differs");

    aux(envp_at_start);
    return check_done();
}
