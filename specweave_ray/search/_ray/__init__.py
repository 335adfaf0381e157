"""search/_ray"""
