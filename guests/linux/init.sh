#!/bin/sh
# /init of smcvisor's Linux test guest: load the firmware-interface modules, report what the checks need
# as "SMCV-<KIND> ..." lines on the console, run the scenario's own commands, power off through PSCI.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "SMCV-GUEST up kernel=$(uname -r) cmdline=$(cat /proc/cmdline)"
for m in $(cat /etc/smcvisor/modules); do
  if insmod "/lib/modules/$m.ko"; then echo "SMCV-MODULE loaded $m"; else echo "SMCV-MODULE failed $m"; fi
done
dmesg | grep -E 'psci|SMC Calling Convention|SMP: Total|SOC_ID|smccc|optee|hw_random|kvm|Spectre|ptp' | sed 's/^/SMCV-DMESG /'
echo "SMCV-CPUS online=$(cat /sys/devices/system/cpu/online)"
# A scenario that ends on a later boot (guest `boots: N`) reboots until the hypervisor says this is boot N:
# smcvisor.boot=K on the command line is the boot's number, written by the hypervisor at each boot.
boot=$(sed -n 's/.*smcvisor\.boot=0*\([0-9][0-9]*\).*/\1/p' /proc/cmdline)
boots=$(sed -n 's/.*smcvisor\.boots=\([0-9][0-9]*\).*/\1/p' /proc/cmdline)
if [ -n "$boot" ] && [ -n "$boots" ] && [ "$boot" -lt "$boots" ]; then
  echo "SMCV-GUEST reboot boot=$boot of $boots"
  if [ -x /etc/smcvisor/reboot.sh ]; then /etc/smcvisor/reboot.sh; else reboot -f; fi
  echo "SMCV-GUEST reboot returned"
  sleep 5
fi
if [ -d /sys/class/misc/hw_random ]; then
  rng=/sys/class/misc/hw_random
  current=$(cat $rng/rng_current)
  echo "SMCV-RNG current=$current available=$(cat $rng/rng_available)"
  echo "SMCV-RNG bytes=$(head -c 16 /dev/hwrng | od -An -tx1 | tr -d ' \n')"
  # Every source the kernel found, one at a time, then the kernel's own choice again.
  for r in $(cat $rng/rng_available); do
    echo "$r" > $rng/rng_current && echo "SMCV-RNG $r bytes=$(head -c 16 /dev/hwrng | od -An -tx1 | tr -d ' \n')"
  done
  echo "$current" > $rng/rng_current
fi
for f in /sys/devices/soc0/*; do [ -f "$f" ] && echo "SMCV-SOC $(basename "$f")=$(cat "$f")"; done
for f in /sys/devices/system/cpu/vulnerabilities/*; do echo "SMCV-VULN $(basename "$f")=$(cat "$f")"; done
for d in /dev/tee0 /dev/teepriv0; do [ -e "$d" ] && echo "SMCV-TEE present=$d"; done
# tee-supplicant serves the driver's requests for normal-world services (TA loading, secure storage).
if [ -e /dev/teepriv0 ] && [ -x /usr/sbin/tee-supplicant ]; then
  mkdir -p /var/lib/tee /data/tee
  /usr/sbin/tee-supplicant -d && echo "SMCV-TEE supplicant started" || echo "SMCV-TEE supplicant failed"
fi
# Line by line (busybox sed buffers its output to the console, so lines would reach the host in bursts).
if [ -x /etc/smcvisor/run.sh ]; then /etc/smcvisor/run.sh 2>&1 | while IFS= read -r line; do echo "SMCV-RUN $line"; done; fi
echo "SMCV-GUEST poweroff boot=$boot"
poweroff -f
