/*
 * smcvisor's platform port of the FF-A ACS: the platform functions whose reference versions
 * (tgt_tfa_fvp/src/pal_misc.c and pal_vcpu_setup.c) hold FVP facts, written for a guest of smcvisor's
 * QEMU machine. Declarations: platform/common/inc/pal_interfaces.h.
 */
#include "pal_interfaces.h"

/* The VAL's scratch buffer (PLATFORM_SHARED_REGION_BASE) and its heap (PLATFORM_HEAP_BUF_SIZE). */
uint8_t pal_misc_buffer[256];
__attribute__((aligned(PAGE_SIZE_4K))) uint8_t pal_heap_buffer[PLATFORM_HEAP_BUF_SIZE];

/* Devices the VAL maps at stage 1 for vm1: the console and the GIC, each at its own address. */
static memory_region_descriptor_t smcvisor_devices[] = {
    {PLATFORM_NS_UART_BASE, PLATFORM_NS_UART_BASE, PLATFORM_NS_UART_SIZE, ATTR_DEVICE_RW},
    {GICD_BASE, GICD_BASE, GICD_SIZE, ATTR_DEVICE_RW},
    {GICC_BASE, GICC_BASE, GICC_SIZE, ATTR_DEVICE_RW},
    {GICR_BASE, GICR_BASE, GICR_SIZE, ATTR_DEVICE_RW},
};

void *pal_get_heap_buffer(void)
{
    return (void *)pal_heap_buffer;
}

uint32_t pal_get_endpoint_device_map(void **region_list, size_t *no_of_mem_regions)
{
    *region_list = (void *)smcvisor_devices;
    *no_of_mem_regions = sizeof(smcvisor_devices) / sizeof(smcvisor_devices[0]);
    return PAL_SUCCESS;
}

/*
 * The end of the run: PSCI SYSTEM_OFF (DEN0022 5.10, function ID 0x84000008), so that the VM ends "off"
 * and the test need not stop it. The FVP port spins instead. SYSTEM_OFF does not return; if it does, spin.
 */
#define SMCVISOR_PSCI_SYSTEM_OFF 0x84000008

uint32_t pal_terminate_simulation(void)
{
    (void)pal_syscall_for_psci(SMCVISOR_PSCI_SYSTEM_OFF, 0, 0, 0);
    for (;;)
        ;
    return PAL_SUCCESS;
}

/* The VAL maps its image at the addresses it runs from. */
void *pal_mem_virt_to_phys(void *va)
{
    return va;
}

/*
 * vCPUs. QEMU's virt machine gives vCPU n the MPIDR affinity Aff0 = n (up to 8 with GICv2; smcvisor allows
 * 8), bit 31 set as RES1; MPID_MASK keeps the affinity fields only.
 */
uint32_t pal_get_no_of_cpus(void)
{
    return PLATFORM_NO_OF_CPUS;
}

uint32_t pal_get_cpuid(uint64_t mpid)
{
    uint64_t aff = mpid & MPID_MASK;

    if (aff < PLATFORM_NO_OF_CPUS)
        return (uint32_t)aff;
    return PAL_INVALID_CPU_INFO;
}

uint64_t pal_get_mpid(uint32_t cpuid)
{
    if (cpuid < PLATFORM_NO_OF_CPUS)
        return (uint64_t)cpuid;
    return PAL_INVALID_CPU_INFO;
}

uint32_t pal_power_on_cpu(uint64_t mpid)
{
    uint32_t ret = pal_syscall_for_psci(SMC_PSCI_CPU_ON_AARCH64, mpid,
                                        (uint64_t)&pal_secondary_cpu_boot_entry, CONTEXT_ID_VALUE);

    if (ret == PSCI_E_SUCCESS)
        return PAL_SUCCESS;
    PAL_LOG("\t\tPSCI_CPU_ON failed, ret=0x%x\n", ret, 0);
    return PAL_ERROR;
}

uint32_t pal_power_off_cpu(void)
{
    uint32_t ret = pal_syscall_for_psci(SMC_PSCI_CPU_OFF, 0, 0, 0);

    PAL_LOG("\t\tPSCI_CPU_OFF failed, ret=0x%x\n", ret, 0);
    return PAL_ERROR;
}
