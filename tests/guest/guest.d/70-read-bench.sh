# Read throughput (bench/ebs_guest.py). A disk whose serial starts with "bench-" is read whole three
# times each time it appears, the page cache dropped before each read, and each read is shown as
#   euca-guest: read <serial> <bytes> <centiseconds>
# timed by /proc/uptime. Nothing happens unless such a disk is attached; the watch runs in the background.
(
    uptime_cs() { cut -d' ' -f1 /proc/uptime | tr -d . | sed 's/^0*//'; }
    seen=" "
    while :; do
        now=" "
        for b in /sys/block/*; do
            serial=$(cat "$b/serial" 2>/dev/null)
            case $serial in bench-*) ;; *) continue ;; esac
            d=${b##*/}
            [ -b "/dev/$d" ] || continue
            now="$now$d:$serial "
            case $seen in *" $d:$serial "*) continue ;; esac
            bytes=$(($(cat "$b/size") * 512))
            for i in 1 2 3; do
                sync
                echo 3 > /proc/sys/vm/drop_caches
                t0=$(uptime_cs)
                dd if="/dev/$d" of=/dev/null bs=1M 2>/dev/null
                t1=$(uptime_cs)
                echo "euca-guest: read $serial $bytes $((t1 - t0))"
            done
        done
        seen=$now
        sleep 0.5
    done
) &
