/* usb4fabric cdefs: <rdma/fi_endpoint.h>, <rdma/fi_tagged.h>, <rdma/fi_rma.h>, <rdma/fi_cm.h>.
 * The data calls are static inline in the headers; API mode compiles a wrapper for each.
 */

struct fid_ep { struct fid fid; ...; };

int fi_endpoint(struct fid_domain *domain, struct fi_info *info,
		struct fid_ep **ep, void *context);
int fi_ep_bind(struct fid_ep *ep, struct fid *bfid, uint64_t flags);
int fi_enable(struct fid_ep *ep);
ssize_t fi_cancel(fid_t fid, void *context);
int fi_getname(fid_t fid, void *addr, size_t *addrlen);

/* messages */
ssize_t fi_recv(struct fid_ep *ep, void *buf, size_t len, void *desc,
		fi_addr_t src_addr, void *context);
ssize_t fi_send(struct fid_ep *ep, const void *buf, size_t len, void *desc,
		fi_addr_t dest_addr, void *context);
ssize_t fi_senddata(struct fid_ep *ep, const void *buf, size_t len, void *desc,
		    uint64_t data, fi_addr_t dest_addr, void *context);
ssize_t fi_inject(struct fid_ep *ep, const void *buf, size_t len, fi_addr_t dest_addr);

/* tagged messages */
ssize_t fi_trecv(struct fid_ep *ep, void *buf, size_t len, void *desc,
		 fi_addr_t src_addr, uint64_t tag, uint64_t ignore, void *context);
ssize_t fi_tsend(struct fid_ep *ep, const void *buf, size_t len, void *desc,
		 fi_addr_t dest_addr, uint64_t tag, void *context);
ssize_t fi_tsenddata(struct fid_ep *ep, const void *buf, size_t len, void *desc,
		     uint64_t data, fi_addr_t dest_addr, uint64_t tag, void *context);
ssize_t fi_tinject(struct fid_ep *ep, const void *buf, size_t len,
		   fi_addr_t dest_addr, uint64_t tag);

/* RMA */
ssize_t fi_read(struct fid_ep *ep, void *buf, size_t len, void *desc,
		fi_addr_t src_addr, uint64_t addr, uint64_t key, void *context);
ssize_t fi_write(struct fid_ep *ep, const void *buf, size_t len, void *desc,
		 fi_addr_t dest_addr, uint64_t addr, uint64_t key, void *context);
ssize_t fi_writedata(struct fid_ep *ep, const void *buf, size_t len, void *desc,
		     uint64_t data, fi_addr_t dest_addr, uint64_t addr, uint64_t key,
		     void *context);

/* helpers defined in the set_source preamble (_build_libfabric.py) */
int usb4fabric_ep_has_ops(struct fid_ep *ep, int which);
