# The network, as a cloud instance sees it: an address from the node's DHCP server, then what the
# metadata service at 169.254.169.254 says about this instance, asked both ways (IMDSv1, and IMDSv2
# with a session token), and a TCP service on port 8080 that answers with the instance id.
#
# Sourced by /init; everything runs in the background so the boot never waits for the network.
# Without a DHCP server (a guest on a bare bridge) udhcpc gives up after a while and nothing else
# happens; "euca.net=off" on the kernel command line skips the network altogether. Every line this
# prints starts with "euca-net: ".

cat > /run/udhcpc.sh <<'EOF'
#!/bin/sh
case "$1" in
bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    echo "ip=$ip mask=$mask router=${router%% *}" > /run/lease
    ;;
esac
EOF
chmod 755 /run/udhcpc.sh

euca_net() {
    md=http://169.254.169.254/latest
    ip link set lo up
    [ -e /sys/class/net/eth0 ] || return 0
    ip link set eth0 up
    udhcpc -f -q -n -i eth0 -t 15 -T 2 -A 1 -s /run/udhcpc.sh >/dev/null 2>&1
    [ -s /run/lease ] || return 0
    echo "euca-net: lease $(cat /run/lease)"

    # IMDSv1: plain GETs; the first may race the node's metadata rules, so it is retried
    n=0
    until iid=$(timeout 5 wget -q -O - "$md/meta-data/instance-id" 2>/dev/null) && [ -n "$iid" ]; do
        n=$((n + 1))
        if [ $n -ge 30 ]; then echo "euca-net: no metadata service"; return 0; fi
        sleep 1
    done
    printf '#!/bin/sh\necho "%s"\n' "$iid" > /run/hello
    chmod 755 /run/hello
    nc -ll -p 8080 -e /run/hello &
    echo "euca-net: listening 8080"
    echo "euca-net: v1 instance-id $iid"
    echo "euca-net: v1 openssh-key $(timeout 5 wget -q -O - "$md/meta-data/public-keys/0/openssh-key" 2>&1)"
    echo "euca-net: v1 user-data $(timeout 5 wget -q -O - "$md/user-data" 2>&1)"

    # IMDSv2: busybox wget cannot PUT, so the token request is written by hand
    tok=$(printf 'PUT /latest/api/token HTTP/1.0\r\nHost: 169.254.169.254\r\nX-aws-ec2-metadata-token-ttl-seconds: 120\r\n\r\n' |
          timeout 5 nc 169.254.169.254 80 | tr -d '\r' | sed '1,/^$/d')
    echo "euca-net: v2 token-length ${#tok}"
    v2() { timeout 5 wget -q -O - --header "X-aws-ec2-metadata-token: $1" "$md/$2" 2>/dev/null; }
    echo "euca-net: v2 instance-id $(v2 "$tok" meta-data/instance-id)"
    echo "euca-net: v2 openssh-key $(v2 "$tok" meta-data/public-keys/0/openssh-key)"
    echo "euca-net: v2 user-data $(v2 "$tok" user-data)"
    if v2 "x$tok" meta-data/instance-id >/dev/null; then
        echo "euca-net: v2 forged token accepted"
    else
        echo "euca-net: v2 forged token refused"
    fi
    echo "euca-net: done"
}

case " $(cat /proc/cmdline) " in
*" euca.net=off "*) ;;
*) euca_net & ;;
esac
