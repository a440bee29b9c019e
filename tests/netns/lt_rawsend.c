// SPDX-License-Identifier: MIT
/*
 * lt_rawsend - sends one crafted TCP SYN (tests/frames.h) out of an interface
 * through a packet socket, for tests/netns/test_frames.sh.
 *
 *   lt_rawsend IFACE DSTMAC SHAPE SRC DST SPORT [PAYLOAD]
 *
 * SHAPE: plain | tinyfrag (first fragment with 8 bytes of TCP, then the
 * rest) | v6ext (hop-by-hop + 4 destination-options headers) | vlanN (N
 * priority tags, VID 0) | v4opt (40 bytes of IPv4 options). A frame larger
 * than a page leaves the packet socket as a non-linear skb with only the
 * Ethernet header in the linear part (packet_alloc_skb), which is what the
 * TC path must cope with.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/if_packet.h>
#include "frames.h"

static int send_frame(int fd, const struct sockaddr_ll *to, const struct frame_spec *s)
{
	static unsigned char buf[FR_CAP];
	int len = frame_build(s, buf, sizeof(buf));

	if (len < 0) {
		fprintf(stderr, "lt_rawsend: cannot build that frame\n");
		return 1;
	}
	if (sendto(fd, buf, (size_t)len, 0, (const struct sockaddr *)to, sizeof(*to)) != len) {
		fprintf(stderr, "lt_rawsend: sendto: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct frame_spec s = { .syn = 1 };
	struct sockaddr_ll to = { .sll_family = AF_PACKET };
	unsigned int m[6];
	struct ifreq ifr;
	const char *shape;
	int fd, i, rc;

	if (argc < 7) {
		fprintf(stderr, "usage: lt_rawsend IFACE DSTMAC SHAPE SRC DST SPORT [PAYLOAD]\n");
		return 2;
	}
	if (sscanf(argv[2], "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6) {
		fprintf(stderr, "lt_rawsend: bad MAC %s\n", argv[2]);
		return 2;
	}
	shape = argv[3];
	s.src = argv[4];
	s.dst = argv[5];
	s.v6 = strchr(s.src, ':') != NULL;
	s.sport = atoi(argv[6]);
	s.payload = argc > 7 ? atoi(argv[7]) : 0;
	s.frag_id = (uint32_t)getpid();
	for (i = 0; i < 6; i++)
		s.dmac[i] = (unsigned char)m[i];
	fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (fd < 0) {
		fprintf(stderr, "lt_rawsend: socket: %s\n", strerror(errno));
		return 1;
	}
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", argv[1]);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr)) {
		fprintf(stderr, "lt_rawsend: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	memcpy(s.smac, ifr.ifr_hwaddr.sa_data, 6);
	to.sll_ifindex = (int)if_nametoindex(argv[1]);
	to.sll_halen = 6;
	memcpy(to.sll_addr, s.dmac, 6);

	if (!strcmp(shape, "plain")) {
		rc = send_frame(fd, &to, &s);
	} else if (!strcmp(shape, "tinyfrag")) {
		s.frag = 1;
		s.frag_len = 8;
		s.frag_more = 1;
		rc = send_frame(fd, &to, &s);
		s.frag_at = 8;
		s.frag_len = -1;
		s.frag_more = 0;
		rc |= send_frame(fd, &to, &s);
	} else if (!strcmp(shape, "v6ext")) {
		s.n_ext = 5;
		s.ext[0] = IPPROTO_HOPOPTS;
		for (i = 1; i < 5; i++)
			s.ext[i] = IPPROTO_DSTOPTS;
		rc = send_frame(fd, &to, &s);
	} else if (!strncmp(shape, "vlan", 4)) {
		s.nvlan = atoi(shape + 4);
		rc = send_frame(fd, &to, &s);
	} else if (!strcmp(shape, "v4opt")) {
		s.v4_opt = 40;
		rc = send_frame(fd, &to, &s);
	} else {
		fprintf(stderr, "lt_rawsend: unknown shape %s\n", shape);
		rc = 2;
	}
	close(fd);
	return rc;
}
