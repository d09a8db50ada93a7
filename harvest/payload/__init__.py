"""What a device's payload becomes: typed decoding, the Binary Parser and the group's Harvest
options (custom timestamp, batch write, category). Pure: no I/O, no transport."""
