"""Admission: the faust-streaming stage between clients and inference workers."""
