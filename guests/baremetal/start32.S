/*
 * The bare-metal conformance guest's entry points for AArch32 EL1 (A32): the same program as start.S,
 * for VMs whose EL1 is AArch32 (the shim enters it in SVC mode with A, I, F masked). The boot vCPU
 * enters at offset 0, vCPUs started by PSCI CPU_ON at offset 0x40 with r0 = context.
 */
	.arch armv7-a
	.arch_extension virt
	.arch_extension sec
	.arm
	.syntax unified

#define STACK_SIZE 0x4000
#define MAX_CPUS 8

	.section .text.boot, "ax"
	.global _start
_start:
	mov	r4, #0			@ boot vCPU
	mov	r5, r0
	b	common

	.org 0x40
	.global secondary_entry
secondary_entry:
	mov	r4, #1
	mov	r5, r0			@ PSCI context
common:
	mrc	p15, 0, r6, c0, c0, 5	@ MPIDR
	and	r6, r6, #0xff
	cmp	r6, #MAX_CPUS
	bhs	hang
	ldr	r1, =stacks
	mov	r2, #STACK_SIZE
	mla	r1, r6, r2, r1
	add	sp, r1, r2
	cmp	r4, #0
	bne	2f
	ldr	r1, =__bss_start
	ldr	r2, =__bss_end
	mov	r3, #0
1:	cmp	r1, r2
	strlo	r3, [r1], #4
	blo	1b
2:	mov	r0, r6
	mov	r1, r4
	mov	r2, r5
	bl	guest_main
hang:
	wfe
	b	hang

/* call(regs, conduit): r0..r7 from the low words of regs[0..7], hvc #0 (conduit 0) or smc #0, results back zero-extended. */
	.global undefs
	.section .bss
	.balign 8
undefs:
	.space 16		@ AArch32: no vectors; kept so guest.c links alike
	.text

	.global call
call:
	push	{r4-r11, lr}
	push	{r0}
	mov	r12, r0
	mov	lr, r1
	ldr	r0, [r12, #0]
	ldr	r1, [r12, #8]
	ldr	r2, [r12, #16]
	ldr	r3, [r12, #24]
	ldr	r4, [r12, #32]
	ldr	r5, [r12, #40]
	ldr	r6, [r12, #48]
	ldr	r7, [r12, #56]
	cmp	lr, #2
	beq	5f
	cmp	lr, #3
	beq	6f
	cmp	lr, #0
	bne	3f
	hvc	#0
	b	4f
5:	hvc	#1		@ a non-zero immediate: not an SMCCC call
	b	4f
6:	smc	#1
	b	7f
3:	smc	#0
7:
	/* The instruction after the SMC: it must run exactly once (R10). */
	ldr	r12, =after_smc
	ldr	lr, [r12]
	add	lr, lr, #1
	str	lr, [r12]
4:	pop	{r12}
	mov	lr, #0
	str	r0, [r12, #0]
	str	lr, [r12, #4]
	str	r1, [r12, #8]
	str	lr, [r12, #12]
	str	r2, [r12, #16]
	str	lr, [r12, #20]
	str	r3, [r12, #24]
	str	lr, [r12, #28]
	str	r4, [r12, #32]
	str	lr, [r12, #36]
	str	r5, [r12, #40]
	str	lr, [r12, #44]
	str	r6, [r12, #48]
	str	lr, [r12, #52]
	str	r7, [r12, #56]
	str	lr, [r12, #60]
	pop	{r4-r11, pc}

	.section .bss
	.balign 16
stacks:
	.space STACK_SIZE * MAX_CPUS

	.section .note.GNU-stack, "", %progbits
