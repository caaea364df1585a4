"""tune_spaces"""
