// SPDX-License-Identifier: MIT
/* Embeds agent/default-config.json so `leaky-agent attach` runs with no file. */
__asm__(".section .rodata\n"
	".global lt_default_config\n"
	".type lt_default_config, @object\n"
	"lt_default_config:\n"
	".incbin \"agent/default-config.json\"\n"
	".byte 0\n"
	".size lt_default_config, . - lt_default_config\n"
	".previous\n");
