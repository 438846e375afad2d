/* Intrusive doubly linked list with a sentinel head. */
#ifndef USB4_LIST_H
#define USB4_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct usb4_list {
	struct usb4_list *next, *prev;
};

static inline void usb4_list_init(struct usb4_list *head)
{
	head->next = head->prev = head;
}

static inline bool usb4_list_empty(const struct usb4_list *head)
{
	return head->next == head;
}

static inline void usb4_list_insert_tail(struct usb4_list *head,
					 struct usb4_list *item)
{
	item->prev = head->prev;
	item->next = head;
	head->prev->next = item;
	head->prev = item;
}

static inline void usb4_list_remove(struct usb4_list *item)
{
	item->prev->next = item->next;
	item->next->prev = item->prev;
	item->next = item->prev = item;
}

#define usb4_list_foreach(head, it) \
	for ((it) = (head)->next; (it) != (head); (it) = (it)->next)

#define usb4_list_foreach_safe(head, it, tmp) \
	for ((it) = (head)->next, (tmp) = (it)->next; (it) != (head); \
	     (it) = (tmp), (tmp) = (it)->next)

#endif /* USB4_LIST_H */
