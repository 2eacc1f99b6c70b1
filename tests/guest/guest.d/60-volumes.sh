# EBS volumes. A disk whose serial is a volume id (hot-plugged, or an EBS root) is looked at once
# each time it appears: its first sector holds a marker naming the volume and the instance that
# wrote it; a disk without one gets this instance's. The marker read back from the disk is shown:
#   euca-guest: volume vol-XXXXXXXX on vdb wrote|found EUCA-VOLUME vol-XXXXXXXX written-by=i-XXXXXXXX
# The instance id is the SMBIOS serial the node gives the domain.
(
    me=$(cat /sys/class/dmi/id/product_serial 2>/dev/null)
    seen=" "
    while :; do
        now=" "
        for b in /sys/block/*; do
            d=${b##*/}
            serial=$(cat "$b/serial" 2>/dev/null)
            case $serial in vol-*) ;; *) continue ;; esac
            [ -b "/dev/$d" ] || continue
            now="$now$d:$serial "
            case $seen in *" $d:$serial "*) continue ;; esac
            mark=$(head -c 512 "/dev/$d" 2>/dev/null | head -n 1 | tr -cd 'A-Za-z0-9 =:-')
            how=found
            case $mark in
                "EUCA-VOLUME vol-"*) ;;
                *)
                    printf 'EUCA-VOLUME %s written-by=%s\n' "$serial" "${me:-unknown}" |
                        dd of="/dev/$d" bs=512 count=1 conv=sync,fsync 2>/dev/null
                    echo 3 > /proc/sys/vm/drop_caches
                    mark=$(head -c 512 "/dev/$d" 2>/dev/null | head -n 1 | tr -cd 'A-Za-z0-9 =:-')
                    how=wrote
                    ;;
            esac
            echo "euca-guest: volume $serial on $d $how $mark"
        done
        for gone in $seen; do
            case $now in *" $gone "*) ;; *) echo "euca-guest: volume ${gone#*:} left ${gone%%:*}" ;; esac
        done
        seen=$now
        sleep 0.5
    done
) &
