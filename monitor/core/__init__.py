"""The pure core: no I/O, no clock reads, no asyncio. Times are passed in as epoch milliseconds."""
