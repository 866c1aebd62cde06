/*
 * smcvisor's platform port of the FF-A ACS (ARM-software/ff-a-acs): the vm1 endpoint as a guest of
 * smcvisor's QEMU machine (docs/ffa-acs.md). Written for smcvisor; the ACS's own reference port
 * (platform/pal_baremetal/tgt_tfa_fvp) is kept as it is and only the values that differ on QEMU's `virt`
 * machine are replaced here, so that everything else (the FVP's secure-side devices, SP IDs, heap size)
 * stays the ACS's choice.
 *
 * What the guest sees under smcvisor (src/machine/qemu/guest-map.ts, QEMU 7.2 hw/arm/virt.c base_memmap):
 * RAM at 0x40000000, the PL011 at 0x09000000 (4 KiB), the GICv2 distributor at 0x08000000 and CPU
 * interface at 0x08010000, or GICv3 redistributors from 0x080a0000. Nothing else is mapped at stage 2:
 * an access anywhere else is a synchronous external abort.
 */
#ifndef SMCVISOR_PAL_CONFIG_DEF_H
#define SMCVISOR_PAL_CONFIG_DEF_H

#include "../../tgt_tfa_fvp/inc/pal_config_def.h"

/* The console: QEMU virt's PL011. */
#undef PLATFORM_NS_UART_BASE
#define PLATFORM_NS_UART_BASE 0x09000000
#undef PLATFORM_NS_UART_SIZE
#define PLATFORM_NS_UART_SIZE 0x1000

/* QEMU virt's GIC. The ACS picks v2 or v3 from ID_AA64PFR0_EL1.GIC (arm_gic_init). */
#undef GICD_BASE
#define GICD_BASE 0x08000000
#undef GICC_BASE
#define GICC_BASE 0x08010000
#undef GICR_BASE
#define GICR_BASE 0x080a0000
#undef GICD_SIZE
#define GICD_SIZE 0x10000
#undef GICC_SIZE
#define GICC_SIZE 0x2000
#undef GICR_SIZE
#define GICR_SIZE 0x20000

/*
 * One vCPU. The ACS's multi-PE tests (mp_execution_contexts, up_migrate_capable) power on every other PE
 * and, on each, send direct requests to SP1 without checking that SP1 exists; a secondary whose request
 * fails never signals the boot PE, which then waits for ever. With one PE they have nothing to power on.
 */
#undef PLATFORM_NO_OF_CPUS
#define PLATFORM_NO_OF_CPUS 1

#endif /* SMCVISOR_PAL_CONFIG_DEF_H */
