/* elf.c - an ELF shared object checked against its own file size. */
#include "host/elf.h"

#include <elf.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

/* This process's ELF identity: what a plugin must match. */
#if UINTPTR_MAX == 0xffffffffffffffffu
#define HOST_CLASS ELFCLASS64
typedef Elf64_Ehdr Ehdr;
typedef Elf64_Phdr Phdr;
#else
#define HOST_CLASS ELFCLASS32
typedef Elf32_Ehdr Ehdr;
typedef Elf32_Phdr Phdr;
#endif
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_DATA ELFDATA2LSB
#else
#define HOST_DATA ELFDATA2MSB
#endif
#if defined(__x86_64__)
#define HOST_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define HOST_MACHINE EM_AARCH64
#elif defined(__i386__)
#define HOST_MACHINE EM_386
#elif defined(__arm__)
#define HOST_MACHINE EM_ARM
#elif defined(__riscv)
#define HOST_MACHINE EM_RISCV
#elif defined(__powerpc64__)
#define HOST_MACHINE EM_PPC64
#elif defined(__s390x__)
#define HOST_MACHINE EM_S390
#endif

static const char *machine_name(unsigned m)
{
	switch (m) {
	case EM_X86_64:
		return "x86-64";
	case EM_AARCH64:
		return "AArch64";
	case EM_386:
		return "i386";
	case EM_ARM:
		return "ARM";
	case EM_RISCV:
		return "RISC-V";
	case EM_PPC64:
		return "PowerPC 64";
	case EM_S390:
		return "s390x";
	default:
		return "another machine";
	}
}

static int fail(char *why, size_t whylen, const char *msg)
{
	snprintf(why, whylen, "%s", msg);
	return -1;
}

int wd_elf_check(int fd, char *why, size_t whylen)
{
	struct stat st;
	Ehdr h;
	uint64_t size, end;
	int loads = 0, dynamic = 0;

	if (fstat(fd, &st) < 0)
		return fail(why, whylen, "cannot stat it");
	size = (uint64_t)st.st_size;
	if (size == 0)
		return fail(why, whylen, "the file is empty");
	if (size < sizeof(h) || pread(fd, &h, sizeof(h), 0) != sizeof(h)) {
		snprintf(why, whylen,
		         "too short for an ELF header (%ju bytes): truncated?",
		         (uintmax_t)size);
		return -1;
	}
	if (h.e_ident[EI_MAG0] != ELFMAG0 || h.e_ident[EI_MAG1] != ELFMAG1 ||
	    h.e_ident[EI_MAG2] != ELFMAG2 || h.e_ident[EI_MAG3] != ELFMAG3)
		return fail(why, whylen, "not an ELF file (no \\177ELF magic)");
	if (h.e_ident[EI_CLASS] != HOST_CLASS)
		return fail(why, whylen,
		            HOST_CLASS == ELFCLASS64
		                ? "a 32-bit ELF file; this warrend is 64-bit"
		                : "a 64-bit ELF file; this warrend is 32-bit");
	if (h.e_ident[EI_DATA] != HOST_DATA)
		return fail(why, whylen,
		            "an ELF file of the other byte order than this "
		            "machine's");
	if (h.e_type != ET_DYN) {
		snprintf(why, whylen,
		         "not a shared object (ELF type %u; build it with "
		         "-shared -fPIC)",
		         (unsigned)h.e_type);
		return -1;
	}
#ifdef HOST_MACHINE
	if (h.e_machine != HOST_MACHINE) {
		snprintf(why, whylen,
		         "built for %s (ELF machine %u), this "
		         "warrend runs on %s",
		         machine_name(h.e_machine), (unsigned)h.e_machine,
		         machine_name(HOST_MACHINE));
		return -1;
	}
#endif
	if (h.e_phnum == 0 || h.e_phentsize != sizeof(Phdr))
		return fail(why, whylen, "no usable program headers");
	end = (uint64_t)h.e_phoff + (uint64_t)h.e_phnum * sizeof(Phdr);
	if (h.e_phoff < sizeof(h) || end > size) {
		snprintf(why, whylen,
		         "truncated: the program headers end at byte %ju, the "
		         "file has %ju bytes",
		         (uintmax_t)end, (uintmax_t)size);
		return -1;
	}
	for (unsigned i = 0; i < h.e_phnum; i++) {
		Phdr p;
		if (pread(fd, &p, sizeof(p),
		          (off_t)(h.e_phoff + i * sizeof(p))) != sizeof(p))
			return fail(why, whylen,
			            "cannot read a program header");
		if (p.p_type != PT_LOAD && p.p_type != PT_DYNAMIC)
			continue;
		/* Overflow-safe: offset and size each within the file. */
		if (p.p_offset > size || p.p_filesz > size - p.p_offset) {
			snprintf(
			    why, whylen,
			    "truncated: %s %u ends at byte %ju, the file has "
			    "%ju bytes",
			    p.p_type == PT_LOAD ? "loadable segment"
			                        : "the dynamic section, header",
			    i, (uintmax_t)p.p_offset + (uintmax_t)p.p_filesz,
			    (uintmax_t)size);
			return -1;
		}
		if (p.p_type == PT_LOAD)
			loads++;
		else
			dynamic++;
	}
	if (loads == 0)
		return fail(why, whylen, "no loadable segment");
	if (dynamic == 0)
		return fail(why, whylen,
		            "no dynamic section: not a shared library");
	return 0;
}
